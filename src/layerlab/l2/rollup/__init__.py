"""The rollups' shared L2: transactions, the state machine, the batch codec."""
