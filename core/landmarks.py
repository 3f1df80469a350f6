"""MediaPipe FaceLandmarker indices, in one place (478 points of the canonical face model).

"Left" and "right" are the subject's own sides, as MediaPipe names them: the subject's
right eye is on the image's left. Every module that reads landmarks (the parser's polygons,
the eyes' lids and irises, the mirror averaging in :mod:`core.detect`, the BiSeNet
alignment) takes its indices from here.
"""

from __future__ import annotations

from functools import cache

FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
RIGHT_EYE: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
RIGHT_IRIS_CENTER, RIGHT_IRIS_RING = 468, (469, 470, 471, 472)
LEFT_IRIS_CENTER, LEFT_IRIS_RING = 473, (474, 475, 476, 477)
IRIS_POINTS: dict[str, tuple[int, ...]] = {
    "right": (RIGHT_IRIS_CENTER, *RIGHT_IRIS_RING),
    "left": (LEFT_IRIS_CENTER, *LEFT_IRIS_RING),
}
# Lower-lid contours, outer corner to inner corner.
LOWER_LID: dict[str, tuple[int, ...]] = {
    "right": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "left": (263, 249, 390, 373, 374, 380, 381, 382, 362),
}
LIPS_OUTER_UPPER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER: tuple[int, ...] = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
LIPS_INNER_UPPER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER: tuple[int, ...] = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
MOUTH_CORNERS: tuple[int, int] = (61, 291)  # subject's right, left
CHIN = 152
NOSE_TIP = 1
NOSE: tuple[int, ...] = (
    168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115,
    48, 64, 129, 358, 279, 49, 209, 429, 217, 437, 188, 412, 122, 351, 193, 417, 196, 419, 3, 248, 51, 281,
)  # fmt: skip
# Lower jaw (image left to right along the chin), used for the neck.
JAW: tuple[int, ...] = (132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361)
# Mid-cheek and forehead points, where the skin colour model samples the face's own skin.
CHEEK_POINTS: tuple[int, ...] = (50, 101, 118, 117, 123, 280, 330, 347, 346, 352, 36, 266, 205, 425)
FOREHEAD_POINTS: tuple[int, ...] = (151, 108, 337, 69, 299, 9)

LANDMARK_COUNT = 478

# Mirror partners (the subject's left <-> right) as "i:j" pairs; every point not listed is
# on the midline and maps to itself. Derived once by matching the landmarks of 19 frontal
# portraits with those of their mirror images (optimal assignment, majority vote); the
# table is an involution and maps the known pairs (33<->263, 61<->291, 468<->473, ...):
# tests/test_core_landmarks.py checks both.
_MIRROR_PAIRS = """
3:248 7:249 20:250 21:251 22:252 23:253 24:254 25:255 26:256 27:257 28:258 29:259 30:260 31:261
32:262 33:263 34:264 35:265 36:266 37:267 38:268 39:269 40:270 41:271 42:272 43:273 44:274 45:275
46:276 47:277 48:278 49:279 50:280 51:281 52:282 53:283 54:284 55:285 56:286 57:287 58:288 59:289
60:290 61:291 62:292 63:293 64:294 65:295 66:296 67:297 68:298 69:299 70:300 71:301 72:302 73:303
74:304 75:305 76:306 77:307 78:308 79:309 80:310 81:311 82:312 83:313 84:314 85:315 86:316 87:317
88:318 89:319 90:320 91:321 92:322 93:323 95:324 96:325 97:326 98:327 99:328 100:329 101:330 102:331
103:332 104:333 105:334 106:335 107:336 108:337 109:338 110:339 111:340 112:341 113:342 114:343
115:344 116:345 117:346 118:347 119:348 120:349 121:350 122:351 123:352 124:353 125:354 126:355
127:356 128:357 129:358 130:359 131:360 132:361 133:362 134:363 135:364 136:365 137:366 138:367
139:368 140:369 141:370 142:371 143:372 144:373 145:374 146:375 147:376 148:377 149:378 150:379
153:380 154:381 155:382 156:383 157:384 158:385 159:386 160:387 161:388 162:389 163:390 165:391
166:392 167:393 169:394 170:395 171:396 172:397 173:398 174:399 176:400 177:401 178:402 179:403
180:404 181:405 182:406 183:407 184:408 185:409 186:410 187:411 188:412 189:413 190:414 191:415
192:416 193:417 194:418 196:419 198:420 201:421 202:422 203:423 204:424 205:425 206:426 207:427
208:428 209:429 210:430 211:431 212:432 213:433 214:434 215:435 216:436 217:437 218:438 219:439
220:440 221:441 222:442 223:443 224:444 225:445 226:446 227:447 228:448 229:449 230:450 231:451
232:452 233:453 234:454 235:455 236:456 237:457 238:458 239:459 240:460 241:461 242:462 243:463
244:464 245:465 246:466 247:467 468:473 469:476 470:475 471:474 472:477
"""


@cache
def mirror_landmarks() -> tuple[int, ...]:
    """The mirror partner of each of the 478 points (a permutation that is its own inverse)."""
    table = list(range(LANDMARK_COUNT))
    for pair in _MIRROR_PAIRS.split():
        left, right = (int(v) for v in pair.split(":"))
        table[left], table[right] = right, left
    return tuple(table)


__all__ = [
    "CHEEK_POINTS",
    "CHIN",
    "FACE_OVAL",
    "FOREHEAD_POINTS",
    "IRIS_POINTS",
    "JAW",
    "LANDMARK_COUNT",
    "LEFT_BROW",
    "LEFT_EYE",
    "LEFT_IRIS_CENTER",
    "LEFT_IRIS_RING",
    "LIPS_INNER_LOWER",
    "LIPS_INNER_UPPER",
    "LIPS_OUTER_LOWER",
    "LIPS_OUTER_UPPER",
    "LOWER_LID",
    "MOUTH_CORNERS",
    "NOSE",
    "NOSE_TIP",
    "RIGHT_BROW",
    "RIGHT_EYE",
    "RIGHT_IRIS_CENTER",
    "RIGHT_IRIS_RING",
    "mirror_landmarks",
]
