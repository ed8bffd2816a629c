"""Scale-out: one scenario across many processes (and machines) on Ray; see driver.py."""
