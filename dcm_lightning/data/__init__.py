"""Data: the MovingShapes domain and the datamodules that feed the modules."""
