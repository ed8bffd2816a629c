"""Everything fleetsim does through the AWS API (aioboto3): the same code for local and AWS."""
