"""Shared helpers for Aurora's end-to-end tests (servers, clients, names)."""
