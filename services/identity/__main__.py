import sys

from services.identity.cli import main

sys.exit(main())
