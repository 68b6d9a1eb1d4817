"""Command handlers of the `gdpr-daemon` command line, one module per group."""
