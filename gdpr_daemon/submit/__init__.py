"""The request queue: claim pending requests, submit them to OwnBackup, record outcomes."""
