"""The ``switchyard`` command: the composition root that wires settings into processes."""
