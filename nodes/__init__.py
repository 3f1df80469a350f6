"""ComfyUI node classes, one module per node family; each module exports
``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``. The maths lives in ``core``."""
