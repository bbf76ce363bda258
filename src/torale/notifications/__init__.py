"""Notifications: channels, preferences, and the delivery of alerts by email, webhook and Apprise.

`service` holds the worker's entry points (`notify_alert`, `deliver`, `sweep_notifications`);
`channels` and `preferences` are what the gateway's notification routes call.
"""
