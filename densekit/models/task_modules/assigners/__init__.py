from .batch_task_aligned_assigner import BatchTaskAlignedAssigner

__all__ = ['BatchTaskAlignedAssigner']
