// The ClickHouse JDBC driver (com.clickhouse:clickhouse-jdbc, as DBeaver
// and Metabase use it), unchanged, against the embedded engine's HTTP
// interface: connect, a parameterised query, a batch insert read back and a
// typed error for a bad query. Exits non-zero on the first failed check.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

public class JdbcClient {
    static void check(String what, Object got, Object want) {
        System.out.println(what + ": " + got);
        if (!want.equals(got)) {
            System.err.println(what + ": got " + got + ", want " + want);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:clickhouse://" + System.getenv("CLICKHOUSE_ADDR") + "/default";
        try (Connection conn = DriverManager.getConnection(url, "default", "")) {
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                check("select", rs.getInt(1), 1);
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT ? + 1, ?")) {
                ps.setInt(1, 41);
                ps.setString(2, "it's");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check("parameters", rs.getLong(1) + " " + rs.getString(2), "42 it's");
                }
            }
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE IF EXISTS default.jdbcclient");
                st.execute("CREATE TABLE default.jdbcclient (id UInt32, name String) ENGINE = MergeTree ORDER BY id");
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO default.jdbcclient (id, name) VALUES (?, ?)")) {
                for (int i = 1; i <= 3; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "row-" + i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            List<String> rows = new ArrayList<>();
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT id, name FROM default.jdbcclient ORDER BY id")) {
                while (rs.next()) {
                    rows.add(rs.getInt(1) + "=" + rs.getString(2));
                }
            }
            check("insert read back", rows.toString(), "[1=row-1, 2=row-2, 3=row-3]");
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM default.no_such_table");
                System.err.println("a query of a missing table succeeded");
                System.exit(1);
            } catch (SQLException e) {
                check("typed error code", e.getErrorCode(), 60);
            }
            try (Statement st = conn.createStatement()) {
                st.execute("DROP TABLE default.jdbcclient");
            }
        }
        System.out.println("ok");
    }
}
