"""Memory: nothing a node call made outlives it (a 24 MP photo is 288 MB a copy).

A library that keeps an exception with its traceback at module level (MediaPipe keeps the
"no PortAudio" error of its audio tasks) pins every frame of the stack that first imported
it, and with them the locals of the first FaceParse call: the photo, its preview, its MASK.
Checked in a fresh interpreter, where that first import happens inside the node call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from helpers import REPO_ROOT


def test_the_first_node_calls_of_a_process_leave_nothing_behind() -> None:
    script = textwrap.dedent(
        """
        import gc, json, sys, weakref
        sys.path.insert(0, sys.argv[1] + "/tests")
        from helpers import astronaut, load_pack_as_comfyui

        pack = load_pack_as_comfyui()
        classes = pack.NODE_CLASS_MAPPINGS
        graph = json.load(open(sys.argv[1] + "/workflows/api/natural_headshot.json"))
        widgets = {n["class_type"]: {k: v for k, v in n["inputs"].items() if not isinstance(v, list)} for n in graph.values()}

        def run():
            image = astronaut()
            parse = classes["PortraitPolishFaceParse"]().parse(image=image, **widgets["PortraitPolishFaceParse"])
            mask, regions, preview = parse["result"]
            skin = classes["PortraitPolishTextureSafeSmooth"]().smooth(
                image=image, face_regions=regions, **widgets["PortraitPolishTextureSafeSmooth"])["result"][0]
            guard = classes["PortraitPolishIdentityGuard"]().guard(
                original=image, retouched=skin, face_regions=regions, **widgets["PortraitPolishIdentityGuard"])
            return [weakref.ref(t) for t in (image, mask, preview, skin, guard["result"][0])]

        refs = run()
        gc.collect()
        print(json.dumps([r() is not None for r in refs]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO_ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    alive = dict(zip(["image", "mask", "preview", "retouched", "guarded"], json.loads(done.stdout.strip().splitlines()[-1]), strict=True))
    assert not any(alive.values()), f"still referenced after the calls returned: {[k for k, v in alive.items() if v]}"
