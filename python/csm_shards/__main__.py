"""`python3 -m csm_shards dump|info PATH`: the `csm-shards` command."""

import sys

from csm_shards.cli import main

sys.exit(main())
