"""Management commands of ``jwt_revocation.django.outbox``."""
