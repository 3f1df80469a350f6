"""Portrait Polish core: the maths and models the nodes call, importable without ComfyUI.

Nothing here imports ComfyUI except through :mod:`.comfy`, and nothing runs at import.
"""
