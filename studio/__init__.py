"""The studio: the control-plane REST + WebSocket API of the CTR users' front end (DESIGN §3-4)."""
