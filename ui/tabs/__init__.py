"""One module per tab of the Streamlit app; each `render(page)` draws its tab."""
