import sys

from rramjax.cli import main

sys.exit(main())
