# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Face presence and mouth movement from MediaPipe's BlazeFace and face mesh (models in wheel)."""

from collections import deque
import time
from typing import Optional

import numpy as np

from .base import EncoderOutput, register_vision, VisionEncoder

# Face-mesh landmark indices (MediaPipe's canonical 468-point topology).
UPPER_LIP, LOWER_LIP = 13, 14        # inner lip midpoints
EYE_OUTER_A, EYE_OUTER_B = 33, 263   # outer eye corners: the face-size yardstick
NOSE_TIP = 1


@register_vision('face')
class FaceEncoder(VisionEncoder):
    """
    Face presence and mouth movement from mediapipe==0.10.21's bundled models.

    Each frame: BlazeFace (full-range model, faces up to ~5 m, or `model_selection=0` for
    short range) finds faces; the largest is cropped with a margin and the 468-point face
    mesh is fitted to the crop, so the mesh always describes the largest face and a small
    distant face is enlarged before meshing. Both graphs are built once.

    `mouth_open` is the inner-lip gap (landmarks 13-14) divided by the outer-eye-corner
    distance (33-263): the eyes do not move when the jaw drops, so the ratio is independent
    of face size and of mouth opening. Typical values: closed ~0.0-0.05, a smile showing
    teeth ~0.1, wide open 0.3-0.5.

    `mouth_moving` is a temporal cue: the standard deviation of `mouth_open` over the last
    `history` meshed frames no older than `horizon` seconds (at least 3 frames), mapped
    linearly to [0, 1] as (std - moving_floor) / (moving_full - moving_floor), clipped.
    moving_floor (0.01) absorbs the mesh's jitter on a still face; moving_full (0.06) is
    about the spread of a mouth alternating between closed and half open while talking.
    The history is cleared whenever no face is meshed, when `stamp` goes backwards, and on
    `reset`. Without a `stamp` the time of the call stands in for the capture time.

    Output labels/scores: `face` (detection score of the largest face, 0 when none),
    `mouth_open` (the ratio clipped to [0, 1]), `mouth_moving`.
    `data` (10 float32, all zero when no face is found):
    0-3: x, y, w, h of the largest face box as fractions of the image width/height
    (x, y the top-left corner); 4: its detection score; 5: mouth_open ratio (unclipped);
    6: mouth_moving; 7: yaw cue, nose tip's horizontal offset from the eye-corner midpoint
    divided by the eye-corner distance (about 0 for a frontal face, sign = direction in
    the image); 8: roll, angle of the eye-corner line in radians; 9: number of faces found.
    Entries 5-8 are 0 when the mesh does not fit (e.g. a face too small or in profile).
    """

    name = 'face'
    dim = 10
    LABELS = ['face', 'mouth_open', 'mouth_moving']

    def __init__(self, device: str = 'cpu', model_selection: int = 1,
                 min_detection_confidence: float = 0.5, history: int = 10,
                 horizon: float = 1.0, moving_floor: float = 0.01, moving_full: float = 0.06,
                 crop_margin: float = 0.5, **_):
        import mediapipe as mp
        from importlib.metadata import version
        if int(model_selection) not in (0, 1):
            raise ValueError(f'model_selection must be 0 (short range) or 1 (full range), '
                             f'got {model_selection}')
        if not 0.0 < float(min_detection_confidence) < 1.0:
            raise ValueError('min_detection_confidence must be in (0, 1)')
        if int(history) < 3 or float(horizon) <= 0:
            raise ValueError('need history >= 3 frames and horizon > 0 s')
        if not 0.0 <= float(moving_floor) < float(moving_full):
            raise ValueError('need 0 <= moving_floor < moving_full')
        # MediaPipe's Python solutions run on the CPU (XNNPACK): `device` is accepted for a
        # uniform node interface and ignored.
        self._device = device
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=int(model_selection),
            min_detection_confidence=float(min_detection_confidence))
        # static_image_mode: the crop moves with the face, so tracking between crops would
        # follow a stale region; a fresh fit per crop costs ~2 ms more.
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=0.5)
        self._history = deque(maxlen=int(history))
        self._horizon = float(horizon)
        self._floor = float(moving_floor)
        self._full = float(moving_full)
        self._margin = float(crop_margin)
        self.encoder_id = (f'mediapipe/{version("mediapipe")}/blazeface_'
                           f'{"full" if int(model_selection) else "short"}+face_mesh')

    def reset(self) -> None:
        """Forget the mouth-movement history."""
        self._history.clear()

    def warmup(self) -> None:
        """Run both graphs once (on a blank frame the mesh is skipped, so mesh a crop too)."""
        blank = np.zeros((224, 224, 3), np.uint8)
        self.encode(blank)
        self._mesh.process(blank)
        self.reset()

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        self._detector.close()
        self._mesh.close()

    def _largest_face(self, rgb: np.ndarray):
        result = self._detector.process(rgb)
        best, n = None, 0
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            n += 1
            if best is None or box.width * box.height > best[2] * best[3]:
                best = (box.xmin, box.ymin, box.width, box.height, float(det.score[0]))
        return best, n

    def _landmarks(self, rgb: np.ndarray, box) -> Optional[np.ndarray]:
        """Fit the mesh to a crop around `box`; return (468, 2) pixel coordinates or None."""
        h, w = rgb.shape[:2]
        cx, cy = (box[0] + box[2] / 2) * w, (box[1] + box[3] / 2) * h
        half = max(box[2] * w, box[3] * h) * (1 + self._margin) / 2
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        pts = result.multi_face_landmarks[0].landmark
        ch, cw = crop.shape[:2]
        return np.array([[p.x * cw + x0, p.y * ch + y0] for p in pts], np.float64)

    def _moving(self, ratio: float, stamp: float) -> float:
        if self._history and stamp < self._history[-1][0]:
            self._history.clear()  # time went backwards (a replayed bag): start over
        self._history.append((stamp, ratio))
        recent = [r for t, r in self._history if stamp - t <= self._horizon]
        if len(recent) < 3:
            return 0.0
        spread = float(np.std(recent))
        return float(np.clip((spread - self._floor) / (self._full - self._floor), 0.0, 1.0))

    def encode(self, rgb: np.ndarray, stamp: Optional[float] = None) -> EncoderOutput:
        """Detect the largest face and its mouth state in one RGB frame captured at `stamp`."""
        rgb = np.ascontiguousarray(rgb, np.uint8)
        stamp = time.monotonic() if stamp is None else float(stamp)
        data = np.zeros(self.dim, np.float32)
        box, n = self._largest_face(rgb)
        pts = self._landmarks(rgb, box) if box is not None else None
        if box is None or pts is None:
            self.reset()
        if box is None:
            return EncoderOutput(data=data, labels=list(self.LABELS),
                                 scores=np.zeros(3, np.float32))
        data[0:5] = box
        data[9] = n
        mouth_open = moving = 0.0
        if pts is not None:
            eye_vec = pts[EYE_OUTER_B] - pts[EYE_OUTER_A]
            eyes = max(float(np.linalg.norm(eye_vec)), 1e-6)
            mouth_open = float(np.linalg.norm(pts[LOWER_LIP] - pts[UPPER_LIP])) / eyes
            moving = self._moving(mouth_open, stamp)
            mid = (pts[EYE_OUTER_A] + pts[EYE_OUTER_B]) / 2
            data[5:9] = (mouth_open, moving, (pts[NOSE_TIP][0] - mid[0]) / eyes,
                         np.arctan2(eye_vec[1], eye_vec[0]))
        scores = np.array([box[4], min(mouth_open, 1.0), moving], np.float32)
        return EncoderOutput(data=data, labels=list(self.LABELS), scores=scores)
