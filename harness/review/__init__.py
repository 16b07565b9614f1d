"""Stage 5: the human review queue (store, enqueue, agreement) behind the Streamlit app in dashboard/.

Entry points: ``enqueue`` (fill the queue from the bench record and every audit's samples), ``summarise_review``
(the label store as the ``ReviewRecord`` the gate reads), ``export_labels`` (CSV/Parquet). The app in
``dashboard/`` reads its config through ``load_review_section`` and reads and writes labels only through
``ReviewStore``; no stage imports the app.
"""
