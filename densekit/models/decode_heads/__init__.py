from .atm_head import ATMHead
from .token_classifier_head import TokenClassifierHead

__all__ = ['ATMHead', 'TokenClassifierHead']
