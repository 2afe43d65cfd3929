"""``python -m jwt_revocation.cli``: the same as the ``jwt-revocation`` command."""

import sys

from ._main import main

sys.exit(main())
