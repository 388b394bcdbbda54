"""The generation rebuild workflow: its input, its steps (plain domain functions over
``Services``) and its state machine definition (``rebuild.asl.json``)."""
