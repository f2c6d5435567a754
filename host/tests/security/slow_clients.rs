//! Slow and abusive HTTP clients (filled in with the server's limits).
