"""The parts of ``run_floor.py`` (the script says what is measured and how).

* :mod:`.inside`: what runs inside the deployment (the no-op task, the enqueuer, the SQL floor),
  imported as ``benchmarks.run_floor``;
* :mod:`.parts`, :mod:`.measure`: each part's floor, one broker's repetitions;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
