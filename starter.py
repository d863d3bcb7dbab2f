"""The Goalkeeper CLI, for people and scripts: `python starter.py --help`.

python starter.py demo                       # the sample goal, end to end
python starter.py up                         # Temporal, PostgreSQL, dashboard :8000
python starter.py goal start spec.json       # prints the goal id and its UI link
python starter.py goal progress GOAL_ID --watch
python starter.py approve GOAL_ID/TASK_ID --as ops-lead
"""

from interfaces.cli.main import main
from interfaces.client import exit_process

if __name__ == "__main__":
    exit_process(main())
