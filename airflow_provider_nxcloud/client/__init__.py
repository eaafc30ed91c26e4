"""NXCloud's API in plain Python: signing, transport, responses, retries, rate limits, errors."""
