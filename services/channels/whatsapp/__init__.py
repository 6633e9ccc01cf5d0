"""The WhatsApp Business adapter's parts apart from HTTP: its settings, the Cloud
API's webhook format and signature, the conversation, and the Cloud API sender.

The endpoints are in `services.channels.adapters.whatsapp`.
"""
