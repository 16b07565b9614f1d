"""Stage 5: the human review queue (store, enqueue, agreement) behind the Streamlit app in dashboard/.

Entry points: ``enqueue`` (fill the queue from bench and audit records), ``summarise_review`` (the label
store as the ``ReviewRecord`` the gate reads), ``export_labels`` (CSV/Parquet). The app in ``dashboard/``
reads and writes only through ``ReviewStore``; no stage imports the app.
"""
