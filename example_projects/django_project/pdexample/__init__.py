"""A small Django shop that pages through PagerDuty when it breaks or slows down."""
