"""``python -m ncp_hpo.cli``: the same as the ``ncp-hpo`` command."""

import sys

from ncp_hpo.cli import main

sys.exit(main())
