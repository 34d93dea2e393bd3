"""``python -m asyncsnn`` (and ``torchrun -m asyncsnn``) runs the command-line tool."""

import sys

from asyncsnn.cli import main

sys.exit(main())
