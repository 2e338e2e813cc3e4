public enum DSG {}
