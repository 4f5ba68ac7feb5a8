"""segsubmit: semantic-segmentation model + COCO image set -> submission.csv and mIoU."""

__version__ = "0.1.0"
