"""``python -m skutui.agent``: the node agent's process."""

import sys

from skutui.agent.main import main

sys.exit(main(sys.argv[1:]))
