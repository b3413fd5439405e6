from .atm_head import ATMHead

__all__ = ['ATMHead']
