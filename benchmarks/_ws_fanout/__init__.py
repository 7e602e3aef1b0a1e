"""The parts of ``ws_fanout.py`` (the script says what is measured and how).

* :mod:`.protocol`: the schedule, the events, the line protocol between the orchestrator and a
  role process, what a receiver saw;
* :mod:`.producer`, :mod:`.clients`, :mod:`.baseline`: the role processes;
* :mod:`.children`: which role runs what, and the orchestrator's handle on a role process;
* :mod:`.deployment`: daphne + PostgreSQL with the Redis layer, the Redis it talks to;
* :mod:`.orchestrate`, :mod:`.measure`, :mod:`.phase`: one phase of each side and its figures;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
