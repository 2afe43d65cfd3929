"""The auth project: logins, logout, password change, simplejwt's blacklist; the outbox app."""
