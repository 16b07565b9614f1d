"""Stage 5: the human review queue (store, enqueue, agreement) behind the Streamlit app in dashboard/."""
