"""Everything that knows SQL: table definitions, the engine, and the statements each part runs."""
