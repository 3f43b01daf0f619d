"""The web UI (Streamlit) and the assistant agent; they reach the rooms over HTTP only."""
