"""The measurement app (``experiments/decay.py``): its configuration (``config``), the seeded
networks and data (``networks``), one run (``run``), the app as the driver sees it (``app``), and
a sweep's tables, figures and report (``tables``, ``plots``, ``report``)."""
