import Link from "next/link";

export default function NotFound() {
  return (
    <div className="panel center-panel">
      <h1>Page not found</h1>
      <p>There is nothing at this address.</p>
      <Link href="/" className="btn">
        Back to your monitors
      </Link>
    </div>
  );
}
