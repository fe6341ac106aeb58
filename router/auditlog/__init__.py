"""Reading the append-only audit log (newest first); nothing here can change it."""
