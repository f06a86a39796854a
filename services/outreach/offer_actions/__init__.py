"""What each billing system does for an offer: one adapter per vendor behind ``base.OfferActions``."""
