"""The notifier: mail to administrators about newly quarantined devices and jailings.
Being built (issue 5 item 2)."""
