"""A second service: trusts the auth project's tokens, with jwt-revocation's DRF class and
middleware; no user table (simplejwt's stateless user)."""
