import sys

from repscope.engine.cli import main

sys.exit(main())
