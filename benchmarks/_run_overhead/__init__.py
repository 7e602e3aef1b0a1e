"""The parts of ``run_overhead.py`` (the script says what is measured and how).

* :mod:`.runs`: the workload, its raw SDK baseline, submitting and checking agentdeck's runs
  (shared with ``concurrency.py`` and ``run_floor.py``);
* :mod:`.measure`: a burst, the idle latency, one broker's repetitions;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
