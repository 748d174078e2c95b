// The data server over NDMP (placeholder: the tests land with the data
// server's integration suite).
