# Mamba YOLO on COCO: the T size (headline command
# `python tools/train.py configs/det/mamba_yolo_coco.py`). Pick another size
# with configs/det/mamba_yolo_{b,l}_coco.py.
_base_ = './mamba_yolo_t_coco.py'
