import sys

from eventwire.runtime.cli import main

sys.exit(main())
