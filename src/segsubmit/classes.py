"""The competition's classes: label value = index in this list; background is implicit in COCO."""

COMPETITION_CLASSES = (
    "Background",
    "General trash",
    "Paper",
    "Paper pack",
    "Metal",
    "Glass",
    "Plastic",
    "Styrofoam",
    "Plastic bag",
    "Battery",
    "Clothing",
)
