"""`renew --once`: what one pass reports and how it meets outages."""
