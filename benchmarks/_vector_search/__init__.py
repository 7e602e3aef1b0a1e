"""The parts of ``vector_search.py`` (the script says what is measured and how).

* :mod:`.config`: targets, the data set's shape, the paths and their server settings;
* :mod:`.text`, :mod:`.dataset`, :mod:`.database`: the words, the data set in the real tables,
  Django and a raw connection to the same database;
* :mod:`.sql`: the app's SQL by hand, ground truth, recall;
* :mod:`.measure`: one path (API, raw SQL, in-process); :mod:`.sweep`: the graph on its own;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
